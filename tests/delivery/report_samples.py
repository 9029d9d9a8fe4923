"""Aggregate report messages as Google and Microsoft send them (RFC 7489 appendix C XML in a
zip or gzip attachment; RFC 8460 JSON, gzip, in multipart/report), for the report tests."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from django.utils import timezone

DAY = 86400


def period(days_ago: int = 1) -> tuple[int, int]:
    """A UTC day that ended `days_ago` days ago (reports cover whole days)."""
    end = (int(time.time()) // DAY - days_ago + 1) * DAY - 1
    return end - DAY + 1, end


def google_dmarc_xml(domain: str, report_id: str, begin: int, end: int) -> bytes:
    """Google's shape: no namespace, no envelope_to; our server passing, a forger failing,
    a mailing list that kept DKIM but broke SPF."""
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>{report_id}</report_id>
    <date_range>
      <begin>{begin}</begin>
      <end>{end}</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>{domain}</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>quarantine</sp>
    <pct>100</pct>
    <np>quarantine</np>
  </policy_published>
  <record>
    <row>
      <source_ip>203.0.113.5</source_ip>
      <count>12</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>{domain}</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>{domain}</domain>
        <result>pass</result>
        <selector>mailhost</selector>
      </dkim>
      <spf>
        <domain>{domain}</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.66</source_ip>
      <count>3</count>
      <policy_evaluated>
        <disposition>quarantine</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>{domain}</header_from>
    </identifiers>
    <auth_results>
      <spf>
        <domain>bulk-mailer.example</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>2001:db8:45::1</source_ip>
      <count>2</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>fail</spf>
        <reason>
          <type>mailing_list</type>
        </reason>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>{domain}</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>{domain}</domain>
        <result>pass</result>
        <selector>mailhost</selector>
      </dkim>
      <spf>
        <domain>lists.example.net</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
</feedback>
""".encode()


def microsoft_dmarc_xml(domain: str, report_id: str, begin: int, end: int) -> bytes:
    """Microsoft's shape: a version, schema prefixes on the root, envelope_to/envelope_from."""
    return f"""<?xml version="1.0"?>
<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <version>1.0</version>
  <report_metadata>
    <org_name>Enterprise Outlook</org_name>
    <email>dmarcreport@microsoft.com</email>
    <report_id>{report_id}</report_id>
    <date_range>
      <begin>{begin}</begin>
      <end>{end}</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>{domain}</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>quarantine</sp>
    <pct>100</pct>
    <fo>0</fo>
  </policy_published>
  <record>
    <row>
      <source_ip>203.0.113.5</source_ip>
      <count>4</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>contoso.example</envelope_to>
      <envelope_from>{domain}</envelope_from>
      <header_from>{domain}</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>{domain}</domain>
        <selector>mailhost</selector>
        <result>pass</result>
      </dkim>
      <spf>
        <domain>{domain}</domain>
        <scope>mfrom</scope>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.66</source_ip>
      <count>1</count>
      <policy_evaluated>
        <disposition>quarantine</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>contoso.example</envelope_to>
      <envelope_from>bulk-mailer.example</envelope_from>
      <header_from>{domain}</header_from>
    </identifiers>
    <auth_results>
      <spf>
        <domain>bulk-mailer.example</domain>
        <scope>mfrom</scope>
        <result>softfail</result>
      </spf>
    </auth_results>
  </record>
</feedback>
""".encode()


def tlsrpt_json(domain: str, report_id: str, begin: int, end: int, mx: str) -> bytes:
    """RFC 8460 4.4's example shape, as Google sends it."""

    def stamp(t: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return json.dumps(
        {
            "organization-name": "Google Inc.",
            "date-range": {"start-datetime": stamp(begin), "end-datetime": stamp(end)},
            "contact-info": "smtp-tls-reporting@google.com",
            "report-id": report_id,
            "policies": [
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-string": [
                            "version: STSv1",
                            "mode: testing",
                            f"mx: {mx}",
                            "max_age: 604800",
                        ],
                        "policy-domain": domain,
                        "mx-host": [mx],
                    },
                    "summary": {
                        "total-successful-session-count": 41,
                        "total-failure-session-count": 3,
                    },
                    "failure-details": [
                        {
                            "result-type": "certificate-expired",
                            "sending-mta-ip": "209.85.220.41",
                            "receiving-mx-hostname": mx,
                            "receiving-ip": "203.0.113.5",
                            "failed-session-count": 2,
                        },
                        {
                            "result-type": "starttls-not-supported",
                            "sending-mta-ip": "209.85.220.42",
                            "receiving-mx-hostname": mx,
                            "failed-session-count": 1,
                            "additional-information": "https://support.google.com/a/answer/9276511",
                        },
                    ],
                }
            ],
        },
        indent=2,
    ).encode()


def _envelope(sender: str, to: str, subject: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP)  # CRLF line ends, as on the wire
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    return message


def google_dmarc_message(to: str, domain: str, report_id: str, begin: int, end: int) -> bytes:
    """Google: the report zipped, the zip the only part."""
    buffer = io.BytesIO()
    name = f"google.com!{domain}!{begin}!{end}"
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.xml", google_dmarc_xml(domain, report_id, begin, end))
    message = _envelope(
        "noreply-dmarc-support@google.com",
        to,
        f"Report domain: {domain} Submitter: google.com Report-ID: {report_id}",
    )
    message.set_content(
        buffer.getvalue(), maintype="application", subtype="zip", filename=f"{name}.zip"
    )
    return message.as_bytes()


def microsoft_dmarc_message(to: str, domain: str, report_id: str, begin: int, end: int) -> bytes:
    """Microsoft: a text part, then the report gzipped."""
    message = _envelope(
        "DMARC Aggregate Report <dmarcreport@microsoft.com>",
        to,
        f"Report Domain: {domain} Submitter: protection.outlook.com Report-ID: <{report_id}>",
    )
    message.set_content("This is a DMARC aggregate report from Microsoft Corporation.\n")
    message.add_attachment(
        gzip.compress(microsoft_dmarc_xml(domain, report_id, begin, end)),
        maintype="application",
        subtype="gzip",
        filename=f"enterprise.protection.outlook.com!{domain}!{begin}!{end}.xml.gz",
    )
    return message.as_bytes()


def google_tlsrpt_message(
    to: str, domain: str, report_id: str, begin: int, end: int, mx: str
) -> bytes:
    """RFC 8460 5.3: multipart/report; report-type="tlsrpt", the JSON gzipped."""
    message = _envelope(
        "noreply-smtp-tls-reporting@google.com",
        to,
        f"Report Domain: {domain} Submitter: google.com Report-ID: <{report_id}>",
    )
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = "google.com"
    message.set_content("This is an aggregate TLS report from google.com\n")
    message.add_attachment(
        gzip.compress(tlsrpt_json(domain, report_id, begin, end, mx)),
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=f"google.com!{domain}!{begin}!{end}!001.json.gz",
    )
    message.set_type("multipart/report")
    message.set_param("report-type", "tlsrpt")
    return message.as_bytes()
