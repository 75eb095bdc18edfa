"""The live socket: its messages and credentials in process, fan-out to many sockets, real
`web` processes talking through Redis, and a Redis outage under open sockets."""
