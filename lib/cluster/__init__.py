"""Sans-IO cluster links: origin choice, the edge pull link and the push link, as state
machines that take `now` and return actions. No sockets, no gevent, no clock reads."""
