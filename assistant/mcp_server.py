"""`tunesmith mcp`: the planner's tools (`assistant.tools`) over the Model Context Protocol on
stdio, so a coding agent can drive a session. Needs the optional `mcp` package
(`pip install 'tunesmith[mcp]'`).

The agent gets exactly what the LLM front end's model gets: the same tools, each typing a line
through `Conversation.say` (validated and saved like a typed one), results as text (data rows
withheld unless the person said `/llm-rows yes` in the session). A run the agent started is
followed here: when it has ended, the next tool call first reports its results, as the app
and the headless chat do.
"""

from __future__ import annotations

from assistant.llm import redact
from assistant.tools import TOOLS, ToolResult, call_tool
from tuning_core import runs
from tuning_core.errors import TuningError


class MCPMissing(TuningError):
    title = "MCP"


def run_tool(conversation, name: str, args: dict | None) -> ToolResult:
    """One tool call, after reporting a run that has ended since the last one."""
    before = []
    if conversation.running and conversation.run_status().get("state") in runs.TERMINAL_STATES:
        before = conversation.finish_run()
    result = call_tool(conversation, name, args or {})
    result.replies[:0] = before
    return result


def build_server(conversation):
    import anyio
    import mcp_types as types
    from mcp.server import Server

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(name=t.name, description=t.description, input_schema=t.parameters)
                for t in TOOLS
            ]
        )

    async def call(ctx, params) -> types.CallToolResult:
        # the planner blocks (reading, profiling, timing steps): off the event loop
        result = await anyio.to_thread.run_sync(
            run_tool, conversation, params.name, params.arguments
        )
        text = redact(result.text, conversation.state.llm_rows) or "(no reply)"
        return types.CallToolResult(content=[types.TextContent(text=text)], is_error=result.error)

    return Server("tunesmith", on_list_tools=list_tools, on_call_tool=call)


def serve(conversation) -> None:
    """Serve until the client closes stdin."""
    try:
        import anyio
        from mcp.server.stdio import stdio_server
    except ImportError:
        raise MCPMissing(
            "`tunesmith mcp` needs the mcp package: pip install 'tunesmith[mcp]'"
        ) from None
    server = build_server(conversation)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
