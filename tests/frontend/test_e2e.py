"""Browser end-to-end tests: headless Debian Chromium (playwright-core) against the session stack.

The stack's admin-api serves frontend/dist; the seed puts a small synthetic catalogue, users,
model versions and served recommendations in place through the public APIs; then
frontend/e2e/run.mjs logs in, opens every page, and checks the like → new recommendations
loop on the shopper page. Screenshots land in tests/frontend/artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from genrec.config import Settings
from tests.admin.seed import World
from tests.frontend.conftest import ARTIFACTS, CHROMIUM, FRONTEND, require

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_admin_app_and_shopper_page_in_chromium(stack: Settings, world: World, node: str) -> None:
    require((FRONTEND / "dist" / "index.html").exists(), "frontend/dist is not built: run `make install`")
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install -y chromium)")
    require((FRONTEND / "node_modules" / "playwright-core").is_dir(), "playwright-core is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    tokens: dict[str, str] = {}
    for name, secret in stack.auth.admin_tokens.items():
        tokens.setdefault(stack.auth.admin_roles.get(name, "viewer"), secret.get_secret_value())
    env = {
        **os.environ,
        "ADMIN_URL": stack.function_url("admin_api"),
        "ADMIN_TOKEN": tokens["operator"], "VIEWER_TOKEN": tokens["viewer"],
        "E2E_USER": world.user_ids[2], "E2E_ITEM": world.item_ids[7],
        "E2E_SHOPPER": f"e2e-shopper-{uuid.uuid4().hex[:6]}",
        "ARTIFACTS_DIR": str(ARTIFACTS), "CHROMIUM": CHROMIUM,
    }
    proc = subprocess.run([node, "e2e/run.mjs"], cwd=FRONTEND, env=env, capture_output=True, text=True, timeout=900)
    print(proc.stdout[-8000:], proc.stderr[-4000:])
    assert proc.returncode == 0, f"browser tests failed (screenshots in {ARTIFACTS}):\n{proc.stdout[-8000:]}"
