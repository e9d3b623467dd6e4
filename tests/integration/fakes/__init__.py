"""fakes: loopback stand-ins for the providers otpd-sender talks to: a
signed-webhook receiver, Twilio's Messages API, SendGrid's v3 mail/send
(httpfake.py) and an SMTP server built on aiosmtpd (smtpfake.py)."""
