"""An SMTP server that keeps what it receives, for the serve tests.

Each message is written whole to --spool as NNNNNN.eml, and one line per recipient is appended
to --log, flushed at once. --delay holds every DATA reply that many seconds, to stand in for a
slow relay while a long send runs.
"""

import argparse
import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, spool, log, delay):
        self.spool = spool
        self.log = log
        self.delay = delay
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.n += 1
        path = os.path.join(self.spool, "%06d.eml" % self.n)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        for r in envelope.rcpt_tos:
            self.log.write(r.lower() + "\n")
        self.log.flush()
        return "250 2.0.0 Ok: queued as %d" % self.n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--spool", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.spool, exist_ok=True)
    sink = Sink(a.spool, open(a.log, "a", buffering=1), a.delay)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(sink, data_size_limit=0, enable_SMTPUTF8=True, auth_require_tls=False),
            "127.0.0.1",
            a.port,
        )
    )
    port = server.sockets[0].getsockname()[1]
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(a.port_file + ".tmp", a.port_file)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
