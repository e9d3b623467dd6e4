"""smtpfake.py: a real SMTP server on 127.0.0.1 (Debian's python3-aiosmtpd)
that keeps every message it accepts.

    smtp = SmtpFake()                   # plain SMTP, no STARTTLS offered
    smtp = SmtpFake(tls_context=ctx)    # offers STARTTLS
    smtp.rcpt_answers["busy@example.com"] = ["451 4.3.0 try again later"]
    smtp.messages                       # [(mail_from, [rcpts], raw bytes)]
    smtp.commands                       # every MAIL/RCPT argument seen
    smtp.sessions                       # connections accepted
    smtp.close()
"""

import collections
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from pgcluster import free_port


class _Handler:
    def __init__(self, fake):
        self.fake = fake

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        with self.fake.lock:
            self.fake.commands.append(("MAIL", address))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        with self.fake.lock:
            self.fake.commands.append(("RCPT", address))
            answers = self.fake.rcpt_answers.get(address)
            answer = answers.popleft() if answers else None
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.fake.lock:
            self.fake.messages.append((envelope.mail_from,
                                       list(envelope.rcpt_tos),
                                       envelope.original_content))
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    def __init__(self, fake, handler, **kw):
        self.fake = fake
        super().__init__(handler, **kw)

    def factory(self):
        with self.fake.lock:
            self.fake.sessions += 1
        return SMTP(self.handler, **self.SMTP_kwargs)


class SmtpFake:
    def __init__(self, tls_context=None):
        self.lock = threading.Lock()
        self.messages = []
        self.commands = []
        self.sessions = 0
        self.rcpt_answers = collections.defaultdict(collections.deque)
        self.port = free_port()
        kw = {}
        if tls_context is not None:
            kw.update(tls_context=tls_context, require_starttls=True)
        self.controller = _Controller(self, _Handler(self),
                                      hostname="127.0.0.1", port=self.port,
                                      server_hostname="mx.test", **kw)
        self.controller.start()

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def answer_rcpt(self, address, *answers):
        """Answer the next RCPTs for address with these replies."""
        with self.lock:
            self.rcpt_answers[address].extend(answers)

    def close(self):
        self.controller.stop()
