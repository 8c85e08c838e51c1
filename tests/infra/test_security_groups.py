"""Security groups: nothing is open to the internet except 443 (and 80, which only redirects)
on the load balancer; every other tier admits only the tier in front of it, on its one port."""

from __future__ import annotations

from typing import Any

OPEN = {"0.0.0.0/0", "::/0"}


def _ingress_rules(all_configs: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    rules = []
    for where, cfg in all_configs.items():
        for name, rule in cfg.resources.get("aws_vpc_security_group_ingress_rule", {}).items():
            rules.append((where, name, rule))
        for name, rule in cfg.resources.get("aws_security_group_rule", {}).items():
            if rule.get("type") == "ingress":
                rules.append((where, name, rule))
        for name, sg in cfg.resources.get("aws_security_group", {}).items():
            for i, rule in enumerate(sg.get("ingress", [])):
                rules.append(
                    (
                        where,
                        f"{name}.ingress[{i}]",
                        {**rule, "security_group_id": f"${{aws_security_group.{name}.id}}"},
                    )
                )
    return rules


def _cidrs(rule: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for key in ("cidr_ipv4", "cidr_ipv6", "cidr_blocks", "ipv6_cidr_blocks"):
        value = rule.get(key)
        if value is None:
            continue
        out.update(value if isinstance(value, list) else [value])
    return out


def test_rules_exist(all_configs: dict[str, Any]) -> None:
    assert len(_ingress_rules(all_configs)) >= 6


def test_internet_only_reaches_alb_443_and_80(all_configs: dict[str, Any]) -> None:
    open_rules = []
    for where, name, rule in _ingress_rules(all_configs):
        cidrs = _cidrs(rule)
        if cidrs & OPEN:
            assert rule["security_group_id"] == "${aws_security_group.alb.id}", (
                f"{where} {name} opens {cidrs}"
            )
            assert rule.get("ip_protocol", rule.get("protocol")) == "tcp", f"{where} {name}"
            assert rule["from_port"] == rule["to_port"], f"{where} {name}: a port range"
            assert rule["from_port"] in (443, 80), f"{where} {name}: port {rule['from_port']}"
            open_rules.append(rule["from_port"])
    assert sorted(open_rules) == [80, 443]


def test_no_all_protocol_ingress(all_configs: dict[str, Any]) -> None:
    for where, name, rule in _ingress_rules(all_configs):
        assert str(rule.get("ip_protocol", rule.get("protocol"))) not in {"-1", "all"}, (
            f"{where} {name}"
        )


def test_each_tier_admits_only_the_tier_in_front(modules: dict[str, Any]) -> None:
    rules = modules["security"].resources["aws_vpc_security_group_ingress_rule"]
    by_group: dict[str, set[tuple[str, str]]] = {}
    for rule in rules.values():
        source = rule.get("referenced_security_group_id") or rule.get("cidr_ipv4")
        by_group.setdefault(rule["security_group_id"], set()).add((rule["from_port"], source))
    assert by_group["${aws_security_group.gateway.id}"] == {
        ("${var.gateway_port}", "${aws_security_group.alb.id}")
    }
    assert by_group["${aws_security_group.cache.id}"] == {
        ("${var.redis_port}", "${aws_security_group.gateway.id}")
    }
    assert by_group["${aws_security_group.mq.id}"] == {
        ("${var.amqp_port}", "${aws_security_group.gateway.id}")
    }
    assert ("${var.database_port}", "${aws_security_group.gateway.id}") in by_group[
        "${aws_security_group.database.id}"
    ]


def test_default_security_group_is_empty(modules: dict[str, Any]) -> None:
    default = modules["networking"].resources["aws_default_security_group"]["this"]
    assert "ingress" not in default
    assert "egress" not in default


def test_no_public_ip_or_public_data_tier(modules: dict[str, Any]) -> None:
    res = modules["compute"].resources
    net = res["aws_ecs_service"]["gateway"]["network_configuration"][0]
    assert net["assign_public_ip"] is False
    assert net["subnets"] == "${var.private_subnet_ids}"
    assert (
        modules["database"].resources["aws_db_instance"]["primary"]["publicly_accessible"] is False
    )
    assert modules["messaging"].resources["aws_mq_broker"]["this"]["publicly_accessible"] is False
