//! `streamlib mcp`: the Model Context Protocol server over stdio (filled in below).

use streamlib_launch::Registry;

/// Serves MCP on stdin/stdout until the client disconnects.
pub fn serve(_registry: Registry) -> anyhow::Result<()> {
    anyhow::bail!("the MCP server is not built yet")
}
