"""The one owner of tradepit's Redis schema: key names, codecs, loaders, readers and the
connection factory. Nothing outside it (and the stage loop's wire layer) talks to Redis.

One module per stage (`ledger`, `matcher`, `marketdata`) holds that stage's keys, codecs, load
function and readers; `catalog`, `portfolio` and `prices` hold what the gateway and the
operator read besides; `keys` the layout they share, `connection` the clients. Every reader
works on a Valkey Cluster as on one server: one key per command, pipelined without MULTI.
"""
