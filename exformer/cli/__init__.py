"""The `exformer` command (`main`) and its dataset reader/writer (`dataset`): imports the
client, and the explain layer only for `--local` (so against a server it needs no torch)."""
