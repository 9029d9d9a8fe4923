"""Settings > Account, Sessions, App passwords, Two-factor sign-in, through the Django client
(the web) and real imaplib / smtplib / poplib sessions (mail clients)."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import ssl

import pytest
from django.test import Client

from mailboxes import services, throttle, totp
from mailboxes.models import AppPassword, Mailbox, RecoveryCode, WebSession
from mailhost import runner
from protocols.imap import responses as imap_responses
from protocols.smtp import replies
from tests.support.servers import running
from tests.webmail.conftest import release_server_connections, sign_in

NEW_PASSWORD = "a much longer password 2026"
PROBE = "/settings/account/"  # a page for signed-in readers only (302 to sign-in otherwise)


def browser(user_agent: str = "TestBrowser/1.0", ip: str = "127.0.0.1") -> Client:
    return Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)


def enable_two_factor(web: Client) -> tuple[str, list[str]]:
    """Enrol as a reader would: read the key off the page, answer with the code it gives."""
    page = web.get("/settings/two-factor/")
    secret = re.search(rb'data-secret="([A-Z2-7]+)"', page.content).group(1).decode()
    assert page.content.count(b"data:image/svg+xml") == 1  # the QR code, as SVG
    response = web.post("/settings/two-factor/", {"action": "enable", "code": totp.code_at(secret)})
    assert response.status_code == 201
    codes = re.findall(rb"<li><code>([a-z-]+)</code></li>", response.content)
    assert len(codes) == services.RECOVERY_CODE_COUNT
    return secret, [c.decode() for c in codes]


def create_app_password(web: Client, name: str = "Phone") -> str:
    response = web.post("/settings/app-passwords/", {"name": name})
    assert response.status_code == 201
    return re.search(rb'data-test="app-password-secret">([a-z ]+)<', response.content).group(1)


# --- Password change ---------------------------------------------------------------------


def test_password_change_ends_the_other_session_and_the_old_password(db, alice):
    laptop, phone = browser("Laptop"), browser("Phone")
    sign_in(laptop, "alice@example.org", "secret")
    sign_in(phone, "alice@example.org", "secret")
    assert phone.get(PROBE).status_code == 200
    # Warm the auth cache with the old password, as a mail client would.
    assert services.mailbox_login(
        address="alice@example.org", password="secret", client_ip="10.0.0.1", protocol="imap"
    )
    response = laptop.post(
        "/settings/account/password/",
        {"old_password": "secret", "new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert laptop.get(PROBE).status_code == 200  # this session goes on
    assert phone.get(PROBE).status_code == 302  # the other one is signed out
    assert WebSession.objects.filter(mailbox=alice).count() == 1
    assert (
        services.mailbox_login(
            address="alice@example.org", password="secret", client_ip="10.0.0.1", protocol="imap"
        )
        is None
    )
    assert services.mailbox_authenticate(address="alice@example.org", password=NEW_PASSWORD)


def failures_logged(caplog, protocol: str, ip: str) -> int:
    """`auth failure` lines: throttle.login_result writes one per failure it counts."""
    line = f"auth failure protocol={protocol} client={ip} user=alice@example.org"
    return sum(record.getMessage() == line for record in caplog.records)


def test_password_change_needs_the_current_password(db, alice, web, caplog):
    response = web.post(
        "/settings/account/password/",
        {"old_password": "wrong", "new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert b"current password is not right" in response.content
    assert services.mailbox_authenticate(address="alice@example.org", password="secret")
    # Counted by the login limiter like a wrong password at sign-in.
    assert failures_logged(caplog, "webmail", "127.0.0.1") == 1


# --- Sessions ----------------------------------------------------------------------------


def test_sessions_list_and_sign_out_everywhere(db, alice):
    laptop = browser("Mozilla/5.0 (X11; Linux) Firefox/140.0", "127.0.0.1")
    phone = browser("Mozilla/5.0 (iPhone) Safari/605", "127.0.0.1")
    sign_in(laptop, "alice@example.org", "secret")
    sign_in(phone, "alice@example.org", "secret")
    page = laptop.get("/settings/sessions/")
    assert b">Firefox on Linux" in page.content and b">Safari on iOS" in page.content
    assert b'title="Mozilla/5.0 (X11; Linux) Firefox/140.0"' in page.content
    assert page.content.count(b"data-session=") == 2
    assert b"(this one)" in page.content
    laptop.post("/settings/sessions/", {"everywhere": "1"})
    assert phone.get(PROBE).status_code == 302
    assert laptop.get(PROBE).status_code == 200
    assert list(WebSession.objects.values_list("user_agent", flat=True)) == [
        "Mozilla/5.0 (X11; Linux) Firefox/140.0"
    ]


def test_one_session_signed_out_from_the_list(db, alice):
    laptop, phone = browser("Laptop"), browser("Phone")
    sign_in(laptop, "alice@example.org", "secret")
    sign_in(phone, "alice@example.org", "secret")
    phone_row = WebSession.objects.get(user_agent="Phone")
    laptop.post("/settings/sessions/", {"session": str(phone_row.pk)})
    assert phone.get(PROBE).status_code == 302
    assert laptop.get(PROBE).status_code == 200


def test_sign_out_forgets_the_session_row(db, alice, web):
    assert WebSession.objects.count() == 1
    web.post("/logout/")
    assert WebSession.objects.count() == 0


# --- Preferences -------------------------------------------------------------------------


def test_display_name_time_zone_and_language_saved(db, alice, web):
    response = web.post(
        "/settings/account/",
        {"display_name": "Alice L.", "time_zone": "Asia/Tokyo", "language": "en"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.display_name, alice.time_zone, alice.language) == ("Alice L.", "Asia/Tokyo", "en")
    # Sessions page times are in the chosen zone (UTC+9): the row's time is 9 hours on.
    row = WebSession.objects.get()
    page = web.get("/settings/sessions/").content.decode()
    from zoneinfo import ZoneInfo

    shown = row.last_seen_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M")
    assert shown in page
    refused = web.post(
        "/settings/account/", {"display_name": "A", "time_zone": "Mars/Olympus", "language": ""}
    )
    assert refused.status_code == 302
    alice.refresh_from_db()
    assert alice.time_zone == "Asia/Tokyo"


# --- App passwords -----------------------------------------------------------------------


def test_app_password_is_shown_once_and_hashed(db, alice, web):
    secret = create_app_password(web, "Thunderbird")
    row = AppPassword.objects.get()
    assert row.name == "Thunderbird" and row.prefix == secret[:4].decode()
    assert secret.replace(b" ", b"").decode() not in row.password
    assert secret not in web.get("/settings/app-passwords/").content
    assert b"Thunderbird" in web.get("/settings/app-passwords/").content


def test_app_password_opens_mail_clients_but_not_the_web(db, alice, web):
    secret = create_app_password(web).decode()
    for protocol in ("imap", "pop3", "smtp", "managesieve"):
        assert (
            services.mailbox_login(
                address="alice@example.org", password=secret, client_ip=None, protocol=protocol
            )
            == alice
        )
    # Typed without the spaces too.
    assert services.mailbox_login(
        address="alice@example.org",
        password=secret.replace(" ", ""),
        client_ip=None,
        protocol="imap",
    )
    response = Client().post("/login/", {"address": "alice@example.org", "password": secret})
    assert response.status_code == 401
    assert AppPassword.objects.get().last_used_at is not None


def test_revoked_app_password_stops_at_once(db, alice, web):
    secret = create_app_password(web).decode()
    assert services.mailbox_login(
        address="alice@example.org", password=secret, client_ip=None, protocol="imap"
    )  # now in the auth cache
    web.post("/settings/app-passwords/", {"revoke": str(AppPassword.objects.get().pk)})
    assert not AppPassword.objects.exists()
    assert (
        services.mailbox_login(
            address="alice@example.org", password=secret, client_ip=None, protocol="imap"
        )
        is None
    )


def test_wrong_app_passwords_count_as_failed_logins(db, alice, web, caplog):
    create_app_password(web)
    assert (
        services.mailbox_login(
            address="alice@example.org",
            password="abcd efgh ijkl mnop",
            client_ip="10.9.9.9",
            protocol="imap",
        )
        is None
    )
    assert failures_logged(caplog, "imap", "10.9.9.9") == 1


# --- Two-factor sign-in ------------------------------------------------------------------


def test_totp_sign_in_with_a_code_computed_here(db, alice, web):
    secret, _codes = enable_two_factor(web)
    client = browser()
    response = client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response.status_code == 302 and response["Location"] == "/login/verify/"
    assert client.get(PROBE).status_code == 302  # not signed in by the password alone
    wrong = client.post("/login/verify/", {"code": "000000"})
    assert wrong.status_code == 401
    # The step after the one used at enrolment: a code is never taken twice.
    alice.refresh_from_db()
    code = totp.hotp(secret, alice.totp_last_step + 1)
    response = client.post("/login/verify/", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get(PROBE).status_code == 200
    # The same code again (a replay from another browser) is refused.
    other = browser()
    other.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert other.post("/login/verify/", {"code": code}).status_code == 401


def test_failed_totp_codes_count_for_the_limiter(db, alice, web, caplog):
    enable_two_factor(web)
    client = browser(ip="10.1.2.3")
    client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    for _attempt in range(3):
        assert client.post("/login/verify/", {"code": "123456"}).status_code == 401
    assert failures_logged(caplog, "webmail", "10.1.2.3") == 3
    # Past the free failures, the next code waits (the limiter's delay, as for passwords).
    assert throttle.admit("alice@example.org", "10.1.2.3", max_wait=0).wait > 0


def test_recovery_code_signs_in_once(db, alice, web):
    _secret, codes = enable_two_factor(web)
    client = browser()
    client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert client.post("/login/verify/", {"code": codes[3].upper()}).status_code == 302
    assert client.get(PROBE).status_code == 200
    assert RecoveryCode.objects.filter(used_at__isnull=False).count() == 1
    again = browser()
    again.post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert again.post("/login/verify/", {"code": codes[3]}).status_code == 401
    assert RecoveryCode.objects.get(code__startswith=codes[3][:4] + "$").code.count(codes[3]) == 0


def test_main_password_refused_to_mail_clients_once_two_factor_is_on(db, alice, web):
    enable_two_factor(web)
    with pytest.raises(services.AppPasswordRequired):
        services.mailbox_login(
            address="alice@example.org", password="secret", client_ip=None, protocol="imap"
        )
    # The web still takes it (then asks for the code).
    response = browser().post("/login/", {"address": "alice@example.org", "password": "secret"})
    assert response["Location"] == "/login/verify/"


def test_turning_two_factor_off_needs_the_password(db, alice, web):
    enable_two_factor(web)
    web.post("/settings/two-factor/", {"action": "disable", "password": "wrong"})
    assert Mailbox.objects.get(pk=alice.pk).totp_secret
    web.post("/settings/two-factor/", {"action": "disable", "password": "secret"})
    assert not Mailbox.objects.get(pk=alice.pk).totp_secret
    assert not RecoveryCode.objects.exists()
    assert services.mailbox_login(
        address="alice@example.org", password="secret", client_ip=None, protocol="imap"
    )


# --- Real mail clients -------------------------------------------------------------------


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the listeners' self-signed test certificate
    return context


@pytest.fixture
def ports(live_settings):
    with running(runner.IMAP, runner.POP3, runner.SMTP) as ports:
        yield ports
    release_server_connections()


@pytest.mark.django_db(transaction=True)
def test_imap_pop3_smtp_take_app_passwords_only_once_two_factor_is_on(ports, alice):
    web = browser()
    sign_in(web, "alice@example.org", "secret")
    enable_two_factor(web)
    secret = create_app_password(web, "Laptop").decode()

    client = imaplib.IMAP4("127.0.0.1", ports["imap"])
    client.starttls(ssl_context=tls())
    with pytest.raises(imaplib.IMAP4.error) as refused:
        client.login("alice@example.org", "secret")
    assert refused.value.args[0] == (
        b"[AUTHENTICATIONFAILED] " + imap_responses.NO_AUTH_APP_PASSWORD.text.encode()
    )
    assert "use an app password" in str(refused.value)
    assert client.login("alice@example.org", secret)[0] == "OK"
    client.select("INBOX")
    client.logout()

    with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=tls())
        with pytest.raises(smtplib.SMTPAuthenticationError) as smtp_refused:
            smtp.login("alice@example.org", "secret")
        assert smtp_refused.value.smtp_code == 535
        assert smtp_refused.value.smtp_error.decode() == (
            f"{replies.S535_AUTH_APP_PASSWORD.status} {replies.S535_AUTH_APP_PASSWORD.text}"
        )
        smtp.login("alice@example.org", secret)
        smtp.sendmail(
            "alice@example.org",
            ["alice@example.org"],
            b"From: alice@example.org\r\nTo: alice@example.org\r\nSubject: via app password\r\n"
            b"\r\nhello\r\n",
        )
    assert alice.folders.get(name="INBOX").messages.filter(subject="via app password").exists()

    pop = poplib.POP3("127.0.0.1", ports["pop3"])
    pop.stls(context=tls())
    pop.user("alice@example.org")
    with pytest.raises(poplib.error_proto, match="use an app password"):
        pop.pass_("secret")
    pop.quit()


# --- Passkeys (the full ceremony runs in Chromium: test_browser_account.py) ----------------


def test_passkey_sign_in_needs_a_challenge_and_a_known_credential(db, alice):
    client = Client(enforce_csrf_checks=False)
    assert client.post("/login/passkey/", "{}", content_type="application/json").status_code == 400
    options = client.post("/login/passkey/options/").json()
    assert options["rpId"] == "testserver" and options["userVerification"] == "required"
    forged = '{"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}}'
    response = client.post("/login/passkey/", forged, content_type="application/json")
    assert response.status_code == 401
    assert client.get(PROBE).status_code == 302
    # The challenge is used up: the same answer again has none to match.
    response = client.post("/login/passkey/", forged, content_type="application/json")
    assert response.status_code == 400


def test_passkey_registration_options_exclude_nothing_yet(db, alice, web):
    options = web.post("/settings/passkeys/options/").json()
    assert options["rp"]["id"] == "testserver"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["user"]["name"] == "alice@example.org"
    assert options["excludeCredentials"] == []


def test_a_session_from_before_the_sessions_list_gets_its_row(db, alice, web):
    """Signed in before WebSession rows existed (an upgrade): listed on its next request,
    not signed out; once listed, removing its row ends it."""
    WebSession.objects.all().delete()
    session = web.session
    del session["webmail_tracked"]
    session.save()
    assert web.get(PROBE).status_code == 200
    assert WebSession.objects.filter(session_key=web.session.session_key).exists()
    WebSession.objects.all().delete()
    assert web.get(PROBE).status_code == 302
