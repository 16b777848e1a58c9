"""One TrueNAS host over gevent: transport, TLS, a live link, login, the session.

`HostSession` is the public face; the rest are its parts. The auth throttle
lives here because only a session logs in.
"""
