"""A tiny authoritative DNS server on loopback for the bench (MAILHOST_DNS_SERVERS points here).

Outbound mail to `*@<sink domain>` finds MX `mx.<sink domain>` -> A the sink's 127.0.0.x
address. Every other name gets a fast NXDOMAIN, so inbound SPF/DKIM/DMARC checks of the bench's
made-up senders never wait on a resolver that cannot reach the world.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(
        self,
        sink_domain: str,
        sink_address: str,
        host: str = "127.0.0.1",
        records: dict[tuple[str, str], list[str]] | None = None,
    ) -> None:
        # records[(name, type)] = [zone-file values]: more names to answer (the inbound
        # checks' bench publishes SPF, DKIM and DMARC records this way).
        self.records = {
            (dns.name.from_text(name), dns.rdatatype.from_text(rdtype)): values
            for (name, rdtype), values in (records or {}).items()
        }
        self.names = {name for name, _ in self.records}
        self.zone = dns.name.from_text(sink_domain)
        self.mx = dns.name.from_text(f"mx.{sink_domain}")
        self.sink_address = sink_address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.address = self.sock.getsockname()
        self.queries = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop = True
        # Closing the socket does not wake a recvfrom in another thread; a datagram does.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", self.address)
        self.thread.join(2)
        self.sock.close()

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        if name == self.zone and rdtype == dns.rdatatype.MX:
            response.answer.append(
                dns.rrset.from_text(name, 60, "IN", "MX", f"10 {self.mx.to_text()}")
            )
        elif name == self.mx and rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", self.sink_address))
        elif (name, rdtype) in self.records:
            values = self.records[(name, rdtype)]
            response.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, *values))
        elif name in (self.zone, self.mx) or name in self.names:
            pass  # the name exists, no data of this type
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
                self.queries += 1
                self.sock.sendto(self._answer(query).to_wire(), peer)
            except Exception:  # a malformed query gets no answer, as from a real server
                continue
