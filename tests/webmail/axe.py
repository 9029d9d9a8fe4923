"""axe-core for the browser tests, fetched from the npm registry at test time (never vendored)
and cached in the temporary directory; checked against the registry's published sha512."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import tempfile
import urllib.request
from pathlib import Path

AXE_VERSION = "4.10.2"
AXE_TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
# `npm view axe-core@4.10.2 dist.integrity`
AXE_INTEGRITY = "sha512-RE3mdQ7P3FRSe7eqCWoeQ/Z9QXrtniSjp1wUjt5nRC3WIpz5rSCve6o3fsZ2aCpJtrZjSZgjwXAoTO5k4tEI0w=="


def axe_source() -> str:
    cached = Path(tempfile.gettempdir()) / f"mailhost-axe-core-{AXE_VERSION}.min.js"
    if not cached.exists():
        with urllib.request.urlopen(AXE_TARBALL, timeout=60) as response:  # noqa: S310 - fixed https URL
            data = response.read()
        digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if digest != AXE_INTEGRITY:
            raise RuntimeError(f"axe-core tarball digest {digest} is not the published one")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = tar.extractfile("package/axe.min.js")
            assert member is not None
            partial = cached.with_suffix(".part")
            partial.write_bytes(member.read())
            partial.replace(cached)
    return cached.read_text(encoding="utf-8")


def serious_violations(page) -> list[str]:
    """Run axe-core (WCAG 2 A/AA rules and best practices) in the page; the serious and critical
    violations, one line each with the elements they name."""
    page.evaluate(axe_source())
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in result["violations"]:
        if violation.get("impact") in {"serious", "critical"}:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:5]]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found
