"""MTA-STS record and policy parsing (RFC 8461 3.1, 3.2) and MX matching (4.1)."""

from __future__ import annotations

import pytest

from delivery.mtasts import Policy, PolicyError, parse_policy, parse_txt


@pytest.mark.parametrize(
    "records,expected",
    [
        ([b"v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
        ([b"v=STSv1;id=abc"], "abc"),
        ([b"v=spf1 -all", b"v=STSv1; id=x1;"], "x1"),
        ([b"v=STSv1; id=a;", b"v=STSv1; id=b;"], None),  # two records: none (3.1)
        ([b"v=STSv1; id=;"], None),
        ([b"v=STSv1; id=has-dash;"], None),  # id is 1*32(ALPHA / DIGIT)
        ([b"v=STSv1; id=" + b"a" * 33 + b";"], None),
        ([b"v=STSv2; id=a;"], None),
        ([], None),
    ],
)
def test_txt_record(records, expected):
    assert parse_txt(records) == expected


def test_policy_fields_and_unknown_keys():
    policy = parse_policy(
        "example.com",
        "1",
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
        "max_age: 604800\r\nextension: ignored\r\n",
    )
    assert policy == Policy(
        "example.com", "1", "enforce", ("mail.example.com", "*.example.net"), 604800
    )


@pytest.mark.parametrize(
    "text,problem",
    [
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "range"),
    ],
)
def test_bad_policies(text, problem):
    with pytest.raises(PolicyError, match=problem):
        parse_policy("example.com", "1", text)


def test_mode_none_needs_no_mx():
    assert (
        parse_policy("example.com", "1", "version: STSv1\nmode: none\nmax_age: 0\n").mode == "none"
    )


@pytest.mark.parametrize(
    "host,allowed",
    [
        ("mail.example.com", True),
        ("MAIL.example.com.", True),
        ("mx1.example.net", True),
        ("example.net", False),  # the wildcard needs one label
        ("a.b.example.net", False),  # and only one
        ("mail.example.com.evil.test", False),
        ("other.example.com", False),
    ],
)
def test_mx_patterns(host, allowed):
    policy = Policy("example.com", "1", "enforce", ("mail.example.com", "*.example.net"), 1)
    assert policy.allows(host) is allowed
