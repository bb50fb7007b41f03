from __future__ import annotations

import pytest

from app.delivery.ssrf import ForwardPolicy, TargetRefused


async def _fake_resolver(host: str, port: int) -> list[str]:
    return {"evil.test": ["10.1.2.3"], "mixed.test": ["127.0.0.1", "192.168.1.5"], "dev.test": ["127.0.0.2"]}[host]


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "0.0.0.0", "::ffff:10.0.0.1", "evil.test",
                                  "mixed.test"])
async def test_guard_refuses_non_loopback(host: str) -> None:
    with pytest.raises(TargetRefused, match="refused"):
        await ForwardPolicy().resolve(host, 80, _fake_resolver)


async def test_guard_allows_loopback_and_operator_choices() -> None:
    policy = ForwardPolicy()
    assert await policy.resolve("127.0.0.1", 80, _fake_resolver) == ["127.0.0.1"]
    assert await policy.resolve("::1", 80, _fake_resolver) == ["::1"]
    assert await policy.resolve("dev.test", 80, _fake_resolver) == ["127.0.0.2"]
    assert set(await policy.resolve("localhost", 80)) <= {"127.0.0.1", "::1"}
    allowed = ForwardPolicy.from_allow(["10.0.0.0/8", "mixed.test"])
    assert await allowed.resolve("evil.test", 80, _fake_resolver) == ["10.1.2.3"]
    assert await allowed.resolve("mixed.test", 80, _fake_resolver) == ["127.0.0.1", "192.168.1.5"]
    with pytest.raises(TargetRefused):
        await allowed.resolve("169.254.169.254", 80, _fake_resolver)
    with pytest.raises(ValueError):
        ForwardPolicy.from_allow(["not a host"])
