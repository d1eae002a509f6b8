"""Call `paddock mcp` tools in order with the official Python SDK.

Usage: calls.py '[["tool", {args}], ...]' [extra paddock mcp args...]
with PADDOCK_BIN, PADDOCK_HOME, HOME, PATH and WORKDIR in the
environment. Prints one JSON line: for each call [is_error, text].
A call that raises is recorded as ["raised", message]; the script goes on.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main():
    calls = json.loads(sys.argv[1])
    params = StdioServerParameters(
        command=os.environ["PADDOCK_BIN"],
        args=["mcp", *sys.argv[2:]],
        cwd=os.environ["WORKDIR"],
        env={k: os.environ[k] for k in ("HOME", "PADDOCK_HOME", "PATH")},
    )
    out = []
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            for name, args in calls:
                try:
                    r = await asyncio.wait_for(s.call_tool(name, args), 60)
                    text = "".join(getattr(c, "text", "") for c in r.content)
                    out.append([bool(r.is_error), text])
                except Exception as e:  # recorded, and the next call is made
                    out.append(["raised", repr(e)])
    print(json.dumps(out))


asyncio.run(main())
