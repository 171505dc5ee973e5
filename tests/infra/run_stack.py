"""Run the Pulumi program for one stack under Pulumi's unit-test mocks and dump what it registered.

    python tests/infra/run_stack.py STACK OUT.json

One process per stack: the Pulumi runtime keeps global state (settings, root stack), so the
program is run once per interpreter. No cloud, no CLI: `pulumi.runtime.set_mocks` answers
every resource registration. Config comes from `infra/pulumi/Pulumi.<STACK>.yaml` plus one
secret the tests look for (`llmApiKey`). Generated passwords are recorded so the tests can
search every registered input for them.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "infra" / "pulumi"
PROJECT = "genrec"
FAKE_LLM_KEY = "sk-test-" + "7" * 40  # a secret set through `pulumi config set --secret`

_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's special-signature key (wrapped secrets)


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if _SIG in value and "value" in value:
            return _unwrap(value["value"])
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def stack_config(stack: str) -> tuple[dict[str, str], list[str]]:
    raw = yaml.safe_load((PROGRAM / f"Pulumi.{stack}.yaml").read_text())["config"]
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    config[f"{PROJECT}:llmApiKey"] = FAKE_LLM_KEY
    return config, [f"{PROJECT}:llmApiKey"]


def run(stack: str) -> dict[str, Any]:
    sys.path.insert(0, str(PROGRAM))
    import pulumi

    registered: list[dict[str, Any]] = []
    generated: list[str] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            outputs = dict(args.inputs)
            if args.typ == "random:index/randomPassword:RandomPassword":
                value = "GENpw" + secrets.token_hex(int(args.inputs.get("length", 32)) // 2)
                generated.append(value)
                outputs["result"] = value
            registered.append({"type": args.typ, "name": args.name, "inputs": _unwrap(args.inputs)})
            return f"{args.name}-id", outputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
            return {}

    pulumi.runtime.set_mocks(Mocks(), project=PROJECT, stack=stack, preview=False)
    config, secret_keys = stack_config(stack)
    pulumi.runtime.set_all_config(config, secret_keys)

    from genrec_infra.program import main  # imported after the mocks: it reads config at import time

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        main()
        return pulumi.Output.from_input(True)

    program()
    return {"stack": stack, "resources": registered, "generated_secrets": generated,
            "config_secrets": [FAKE_LLM_KEY]}


if __name__ == "__main__":
    stack_name, out = sys.argv[1], Path(sys.argv[2])
    out.write_text(json.dumps(run(stack_name), indent=1, default=str))
