"""The server's plugins, installed in one place: `install(server)` appends each to
server.plugins in the order their hooks run (see Server._dispatch in lib/server/core/app.py)."""
from lib.server.cluster.plugin import DirectoryPlugin
from lib.server.edge.plugin import EdgePlugin
from lib.server.edge.forward import ForwardPlugin
from lib.server.hls.sink import HlsPlugin
from lib.server.dvr.sink import DvrPlugin
from lib.server.ffmpeg.plugin import ProcessPlugin
from lib.server.process.memory import MemoryPlugin


def install(server):
    server.plugins.append(DirectoryPlugin(server))    # first: a refused publish starts nothing
    server.plugins.append(EdgePlugin(server))
    server.plugins.append(ForwardPlugin(server))
    server.plugins.append(HlsPlugin(server))
    server.plugins.append(DvrPlugin(server))
    server.plugins.append(ProcessPlugin(server))
    server.plugins.append(MemoryPlugin(server))
