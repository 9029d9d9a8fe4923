"""Web paths other software relies on (DESIGN.md's contract): client autoconfig for
Thunderbird, Outlook and Apple devices, the Prometheus scrape and the health check.

Autoconfig answers for any address at a hosted domain, whether or not the mailbox exists,
and 404 for any other domain (hosted domains are public anyway: they have MX records).
"""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from mailboxes.selectors import domain_get
from mailhost import clientconfig, health, metrics
from webmail.auth import mailbox_required
from webmail.security import with_headers
from webmail.views.common import folder_items

AUTOCONFIG_HOST_PREFIX = "autoconfig."
XML = "application/xml; charset=utf-8"


def _hosted_domain(name: str) -> str | None:
    """The hosted domain's stored (ASCII) name, or None when it is not ours or is disabled."""
    domain = domain_get(name.strip().rstrip(".")) if name.strip() else None
    return domain.name if domain is not None and domain.active else None


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] if "@" in address else ""


@require_safe  # GET and HEAD
def thunderbird_autoconfig(request: HttpRequest) -> HttpResponse:
    """Thunderbird asks autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=... and
    DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml (the address is optional there)."""
    address = request.GET.get("emailaddress", "")
    if address:
        name = _domain_of(address)
    else:
        name, _port = split_domain_port(request.get_host())
        name = name.removeprefix(AUTOCONFIG_HOST_PREFIX)
    domain = _hosted_domain(name)
    if domain is None:
        return HttpResponse(status=404)
    document = clientconfig.thunderbird_config(domain, clientconfig.Servers.from_settings())
    return HttpResponse(document, content_type=XML)


@csrf_exempt  # Outlook POSTs without a session or a token
@require_POST
def autodiscover_xml(request: HttpRequest) -> HttpResponse:
    try:
        address = clientconfig.autodiscover_request_address(request.body)
    except clientconfig.InvalidRequest:
        error = clientconfig.autodiscover_error(600, "Invalid Request")
        return HttpResponse(error, content_type=XML, status=400)
    if _hosted_domain(_domain_of(address)) is None:
        error = clientconfig.autodiscover_error(500, "The e-mail address cannot be found.")
        return HttpResponse(error, content_type=XML, status=404)
    document = clientconfig.autodiscover_response(address, clientconfig.Servers.from_settings())
    return HttpResponse(document, content_type=XML)


@require_safe
def autodiscover_json(request: HttpRequest, address: str = "") -> HttpResponse:
    """Autodiscover v2: `/autodiscover/autodiscover.json?Email=A&Protocol=P` or
    `/autodiscover/autodiscover.json/v1.0/A?Protocol=P`. Only AutodiscoverV1 is offered: the
    URL of the POX endpoint above (Outlook for IMAP accounts then POSTs there)."""
    address = address or request.GET.get("Email", "")
    protocol = request.GET.get("Protocol", "")
    if protocol.lower() != clientconfig.AUTODISCOVER_V1.lower():
        return JsonResponse(
            {
                "ErrorCode": "InvalidProtocol",
                "ErrorMessage": (
                    f"The given protocol value is invalid. Supported values are"
                    f" '{clientconfig.AUTODISCOVER_V1}'"
                ),
            },
            status=400,
        )
    if _hosted_domain(_domain_of(address)) is None:
        return JsonResponse(
            {"ErrorCode": "NotFound", "ErrorMessage": "The e-mail address cannot be found."},
            status=404,
        )
    hostname = clientconfig.Servers.from_settings().hostname
    return JsonResponse(
        {
            "Protocol": clientconfig.AUTODISCOVER_V1,
            "Url": f"https://{hostname}/autodiscover/autodiscover.xml",
        }
    )


@require_GET
@mailbox_required
def mail_apps(request: HttpRequest) -> HttpResponse:
    """Webmail page: the settings a mail app needs, and the Apple profile to download."""
    return render(
        request,
        "webmail/mail_apps.html",
        {
            "folders": folder_items(request.mailbox.pk),
            "servers": clientconfig.Servers.from_settings(),
            "address": request.mailbox.address,
        },
    )


@require_GET
@mailbox_required
def apple_profile(request: HttpRequest) -> HttpResponse:
    mailbox = request.mailbox
    document = clientconfig.mobileconfig(
        mailbox.address,
        display_name=mailbox.display_name,
        servers=clientconfig.Servers.from_settings(),
    )
    response = HttpResponse(document, content_type=clientconfig.MOBILECONFIG_CONTENT_TYPE)
    filename = json.dumps(f"{mailbox.address}.mobileconfig", ensure_ascii=True)
    response["Content-Disposition"] = f"attachment; filename={filename}"
    response["Cache-Control"] = "no-store"
    return response


def acme_challenge(request: HttpRequest, token: str) -> HttpResponse:
    """RFC 8555 8.3: the key authorization of an http-01 challenge mailhost.acme is answering."""
    from mailhost import acme

    body = acme.challenge_response(token)
    if body is None:
        raise Http404
    return HttpResponse(body, content_type="application/octet-stream")


urlpatterns = [
    path(".well-known/acme-challenge/<str:token>", require_GET(acme_challenge)),
    path(".well-known/autoconfig/mail/config-v1.1.xml", thunderbird_autoconfig),
    path("mail/config-v1.1.xml", thunderbird_autoconfig),
    path("autodiscover/autodiscover.xml", autodiscover_xml),
    path("Autodiscover/Autodiscover.xml", autodiscover_xml),  # Outlook's own spelling
    path("autodiscover/autodiscover.json", autodiscover_json),
    path("autodiscover/autodiscover.json/v1.0/<str:address>", autodiscover_json),
    path("settings/mail-apps/", with_headers(mail_apps), name="mail_apps"),
    path(
        "settings/mail-apps/apple.mobileconfig",
        with_headers(apple_profile),
        name="apple_profile",
    ),
    path("metrics", require_GET(metrics.scrape), name="metrics"),
    path("healthz", require_http_methods(["GET", "HEAD"])(health.healthz), name="healthz"),
]
