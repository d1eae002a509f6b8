"""A real MCP client (the official Python SDK) against `paddock mcp`.

Run by crates/paddock/tests/integration/mcp.rs with PADDOCK_BIN,
PADDOCK_HOME, HOME and WORKDIR in the environment. Prints one JSON line
with what it saw; exits non-zero with a message on the first surprise.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError as McpError


def sandbox_processes(home):
    """Processes of this test's store other than the MCP server itself."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if f"PADDOCK_HOME={home}".encode() in env and b"__supervise" in cmd:
            found.append((pid, [c.decode(errors="replace") for c in cmd if c]))
    return found


def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def main():
    home = os.environ["PADDOCK_HOME"]
    work = os.environ["WORKDIR"]
    params = StdioServerParameters(
        command=os.environ["PADDOCK_BIN"],
        args=["mcp"],
        cwd=work,
        env={k: os.environ[k] for k in ("HOME", "PADDOCK_HOME", "PATH")},
    )
    seen = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            tools = await s.list_tools()
            seen["tools"] = sorted(t.name for t in tools.tools)
            # Started and idle: no session, no sandbox process.
            await asyncio.sleep(0.5)
            seen["idle_processes"] = sandbox_processes(home)
            seen["idle_sessions"] = os.listdir(os.path.join(home, "sessions")) if os.path.isdir(os.path.join(home, "sessions")) else []
            seen["info_before"] = json.loads(text(await s.call_tool("session_info", {})))

            r = await s.call_tool("write_file", {"path": "hello.txt", "content": "hi from mcp\n"})
            seen["write"] = [r.is_error, text(r)]
            r = await s.call_tool("read_file", {"path": "hello.txt"})
            seen["read"] = [r.is_error, text(r)]
            r = await s.call_tool("read_file", {"path": "big.txt"})
            seen["read_big"] = [r.is_error, len(text(r))]
            r = await s.call_tool("run_command", {"command": "echo out; echo err >&2; exit 3"})
            seen["run"] = [r.is_error, json.loads(text(r))]
            r = await s.call_tool("run_command", {"argv": ["sh", "-c", "cat; echo done"], "stdin": "piped\n"})
            seen["run_stdin"] = [r.is_error, json.loads(text(r))]
            r = await s.call_tool("run_command", {"command": "sleep 30", "timeout_s": 1})
            seen["timeout"] = [r.is_error, json.loads(text(r))]
            r = await s.call_tool("list_files", {})
            seen["list"] = [r.is_error, text(r)]
            r = await s.call_tool("write_file", {"path": "/usr/bin/paddock-mcp-evil", "content": "x"})
            seen["write_denied"] = [r.is_error, text(r)]
            r = await s.call_tool("read_file", {"path": os.path.join(os.environ["HOME"], ".ssh/id_rsa")})
            seen["read_denied"] = [r.is_error, text(r)]
            # Malformed calls get protocol errors and the server goes on.
            try:
                r = await s.call_tool("run_command", {"command": "true", "argv": ["true"]})
                seen["bad_args"] = ["no error", r.is_error, text(r)]
            except McpError as e:
                seen["bad_args"] = ["McpError", str(e)]
            try:
                r = await s.call_tool("no_such_tool", {})
                seen["bad_tool"] = ["no error", r.is_error, text(r)]
            except McpError as e:
                seen["bad_tool"] = ["McpError", str(e)]
            seen["info_after"] = json.loads(text(await s.call_tool("session_info", {})))
    print(json.dumps(seen))


asyncio.run(main())
