"""An SMTP server for the send tests, with faults injected on demand.

Every accepted message appends one line per recipient to --log (the address), flushed at once,
so a test can count what was received per address even after killing the sender. The same
messages also append "address<TAB>subject" lines to --log + ".subjects", so a test that sends
several issues can count per issue.

Faults come from a JSON file (--faults), every key optional:
  tempfail:   {"regex": R, "times": N, "reply": "451 4.3.0 ..."}  RCPT of a matching address
              gets the reply on its first N attempts
  reject:     {"regex": R, "reply": "550 5.1.1 ..."}              RCPT always refused (or a list
              of such rules: the first that matches answers)
  disconnect_after: N    after N accepted messages, the next MAIL gets 421 and the connection is
                         closed (once)
  drop_in_data: {"regex": R, "times": N}   the first N DATA commands for a matching address get
                         no reply: the connection is closed before any content is taken
  drop_in_content: {"regex": R, "times": N, "bytes": B}   the first N messages to a matching
                         address get their 354, then the server takes B bytes of the content
                         (default 512) and hangs up before the final dot; each such drop appends
                         "address bytes-taken" to --log + ".dropped"
  drop_after_dot: {"regex": R, "times": N}   the first N messages to a matching address are
                         received whole (and logged as received), then the connection is closed
                         without a reply to the final dot
  stall_after: N         after N accepted messages the server stops answering anything
  auth:  {"user": U, "password": P}    AUTH required (after STARTTLS); with "echo": true a
                         refused AUTH is answered with the password and the exchange in the text
  tls:   {"cert": FILE, "key": FILE}   STARTTLS offered and required
  implicit_tls: true     with tls: TLS from the first byte (smtps) instead of STARTTLS
  no_pipelining: true    do not advertise PIPELINING (commands then go one at a time)
  data_delay_ms: N       wait N ms before answering each message's final dot (a relay's
                         latency: the throughput of a send is bound by it, not by the CPU)
  record_rcpt: true      append "unix-seconds<TAB>address" to --log + ".rcpt" for every RCPT
                         accepted, flushed at once (the order of arrival, with its time), and
                         "address<TAB>List-Unsubscribe" to --log + ".unsubscribe" for every
                         message received
"""

import argparse
import asyncio
import email.parser
import email.policy
import json
import logging
import os
import re
import socket
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class State:
    def __init__(self, faults, log):
        self.faults = faults
        self.log = log
        self.accepted = 0
        self.tempfails = {}
        self.drops = {}
        self.content_drops = {}
        self.dot_drops = {}
        self.dropped = open(log.name + ".dropped", "a", buffering=1)
        self.subjects = open(log.name + ".subjects", "a", buffering=1)
        self.disconnected = False
        self.stalled = False
        self.connections = 0
        self.rcpts = None
        self.unsubscribe = None
        if faults.get("record_rcpt"):
            self.rcpts = open(log.name + ".rcpt", "a", buffering=1)
            self.unsubscribe = open(log.name + ".unsubscribe", "a", buffering=1)


def matches(rule, address):
    return rule is not None and re.search(rule["regex"], address) is not None


class Handler:
    def __init__(self, state):
        self.s = state

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.s.faults.get("no_pipelining"):
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        f = self.s.faults
        a = address.lower()
        rejects = f.get("reject")
        if isinstance(rejects, dict):
            rejects = [rejects]
        for rule in rejects or []:
            if matches(rule, a):
                return rule.get("reply", "550 5.1.1 No such user here")
        tf = f.get("tempfail")
        if matches(tf, a):
            n = self.s.tempfails.get(a, 0)
            if n < tf.get("times", 1):
                self.s.tempfails[a] = n + 1
                return tf.get("reply", "451 4.3.0 Try again later")
        envelope.rcpt_tos.append(address)
        if self.s.rcpts is not None:
            self.s.rcpts.write(f"{time.time():.6f}\t{a}\n")
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        head = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
        subject = " ".join(str(head.get("subject", "")).split())
        delay = self.s.faults.get("data_delay_ms")
        if delay:
            await asyncio.sleep(delay / 1000)
        unsubscribe = " ".join(str(head.get("list-unsubscribe", "")).split())
        for r in envelope.rcpt_tos:
            self.s.subjects.write(r.lower() + "\t" + subject + "\n")
            self.s.log.write(r.lower() + "\n")
            if self.s.unsubscribe is not None:
                self.s.unsubscribe.write(r.lower() + "\t" + unsubscribe + "\n")
        self.s.log.flush()
        self.s.accepted += 1
        rule = self.s.faults.get("drop_after_dot")
        a = envelope.rcpt_tos[0].lower()
        n = self.s.dot_drops.get(a, 0)
        if matches(rule, a) and n < rule.get("times", 1):
            self.s.dot_drops[a] = n + 1
            server.hang_up_instead_of_reply = True
        stall = self.s.faults.get("stall_after")
        if stall is not None and self.s.accepted >= stall:
            self.s.stalled = True
        return "250 2.0.0 Ok: queued"


class FaultySMTP(SMTP):
    def __init__(self, handler, state, **kw):
        super().__init__(handler, **kw)
        self.st = state

    def connection_made(self, transport):
        self.st.connections += 1
        super().connection_made(transport)

    async def push(self, status):
        if self.st.stalled:
            return
        if getattr(self, "hang_up_instead_of_reply", False):
            # The message is stored; the client never hears so.
            self.hang_up_instead_of_reply = False
            self.transport.close()
            return
        await super().push(status)

    async def smtp_MAIL(self, arg):
        n = self.st.faults.get("disconnect_after")
        if n is not None and not self.st.disconnected and self.st.accepted >= n:
            self.st.disconnected = True
            await self.push("421 4.3.2 Service shutting down, closing channel")
            self.transport.close()
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg):
        rule = self.st.faults.get("drop_in_data")
        env = self.envelope
        if rule is not None and env is not None and env.rcpt_tos:
            a = env.rcpt_tos[0].lower()
            n = self.st.drops.get(a, 0)
            if matches(rule, a) and n < rule.get("times", 1):
                self.st.drops[a] = n + 1
                # Hang up in the DATA phase, before any content is taken. (Hanging up after
                # a 354 races with a client that has already pushed the whole message and
                # its final dot into the socket: that client must call the outcome unknown.)
                self.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
                self.transport.close()
                return
        rule = self.st.faults.get("drop_in_content")
        if rule is not None and env is not None and env.rcpt_tos:
            a = env.rcpt_tos[0].lower()
            n = self.st.content_drops.get(a, 0)
            if matches(rule, a) and n < rule.get("times", 1):
                self.st.content_drops[a] = n + 1
                await self.take_part_and_hang_up(a, rule.get("bytes", 512))
                return
        await super().smtp_DATA(arg)

    async def take_part_and_hang_up(self, address, want):
        sock = self.transport.get_extra_info("socket")
        # TCP_CORK holds the 354 until the shutdown, which sends it with the FIN in one
        # segment: the client reads the 354 and the hang-up together, so it learns of the
        # drop before it can write the final dot, however the two processes are scheduled.
        # Reading goes on after the half-close: the server takes part of the content.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        self._writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        sock.shutdown(socket.SHUT_WR)
        taken = b""
        try:
            while len(taken) < want:
                chunk = await self._reader.read(want - len(taken))
                if not chunk:
                    break
                taken += chunk
        finally:
            if b"\r\n.\r\n" in taken:
                # The whole message came within `want` bytes: not a drop mid-content.
                self.st.dropped.write(f"{address} whole\n")
            else:
                self.st.dropped.write(f"{address} {len(taken)}\n")
            if self.transport is not None:
                self.transport.abort()


def main():
    # Faults make aiosmtpd log tracebacks on purpose; the tests judge by counts and replies.
    logging.basicConfig(level=logging.CRITICAL)
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--faults")
    a = p.parse_args()

    faults = {}
    if a.faults:
        with open(a.faults) as f:
            faults = json.load(f)
    state = State(faults, open(a.log, "a", buffering=1))
    handler = Handler(state)

    kw = {"data_size_limit": 0, "enable_SMTPUTF8": True}
    tls = faults.get("tls")
    implicit = None
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls["cert"], tls["key"])
        if faults.get("implicit_tls"):
            implicit = ctx
        else:
            kw.update(tls_context=ctx, require_starttls=True)
    auth = faults.get("auth")
    if auth:
        def authenticator(server, session, envelope, mechanism, data):
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == auth["user"]
                and data.password.decode() == auth["password"]
            )
            if not ok and auth.get("echo"):
                # A careless relay that repeats the exchange, password and all, with a
                # terminal escape sequence in it.
                import base64
                plain = base64.b64encode(b"\0" + data.login + b"\0" + data.password).decode()
                message = (
                    "535 5.7.8 \x1b]0;owned\x07Authentication failed for password "
                    + data.password.decode() + ": AUTH PLAIN " + plain
                )
                return AuthResult(success=False, handled=False, message=message)
            return AuthResult(success=ok, handled=False)

        kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(tls) and implicit is None)
    else:
        kw.update(auth_require_tls=False)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: FaultySMTP(handler, state, loop=loop, **kw), a.host, a.port, ssl=implicit
        )
    )
    port = server.sockets[0].getsockname()[1]
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(a.port_file + ".tmp", a.port_file)
    # The connection count lets a test prove that nothing connected at all.
    async def report():
        # Written aside and renamed: a reader never sees the file truncated and empty.
        while True:
            with open(a.port_file + ".connections.tmp", "w") as f:
                f.write(str(state.connections))
            os.rename(a.port_file + ".connections.tmp", a.port_file + ".connections")
            await asyncio.sleep(0.1)

    loop.create_task(report())
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
