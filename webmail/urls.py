"""Webmail routes. Every view gets the strict page CSP unless it sets a policy of its own."""

from django.urls import path

from webmail.security import with_headers
from webmail.views import (
    account,
    api,
    auth,
    compose,
    contacts,
    filters,
    folders,
    identities,
    mailbox,
    reading,
    search,
    senders,
)

app_name = "webmail"

_routes = [
    ("", mailbox.index, "index"),
    ("login/", auth.login, "login"),
    ("login/verify/", auth.login_verify, "login_verify"),
    ("login/passkey/options/", auth.passkey_login_options, "passkey_login_options"),
    ("login/passkey/", auth.passkey_login, "passkey_login"),
    ("logout/", auth.logout, "logout"),
    ("f/<int:folder_id>/", mailbox.folder_view, "folder"),
    ("f/<int:folder_id>/bulk/", mailbox.bulk, "bulk"),
    ("folders/", folders.folders_view, "folders"),
    ("folders/create/", folders.folder_create, "folder_create"),
    ("folders/<int:folder_id>/rename/", folders.folder_rename, "folder_rename"),
    ("folders/<int:folder_id>/delete/", folders.folder_delete, "folder_delete"),
    ("folders/<int:folder_id>/sharing/", folders.folder_sharing, "folder_sharing"),
    ("m/<int:folder_id>/<int:uid>/", reading.message_view, "message"),
    ("m/<int:folder_id>/<int:uid>/frame/", reading.message_frame, "message_frame"),
    ("m/<int:folder_id>/<int:uid>/part/<str:path>/", reading.message_part, "message_part"),
    ("m/<int:folder_id>/<int:uid>/raw/", reading.message_raw, "message_raw"),
    ("compose/", compose.compose_view, "compose"),
    ("search/", search.search_view, "search"),
    ("settings/account/", account.account_view, "account"),
    ("settings/account/password/", account.password_change, "password_change"),
    ("settings/sessions/", account.sessions_view, "sessions"),
    ("settings/app-passwords/", account.app_passwords_view, "app_passwords"),
    ("settings/two-factor/", account.two_factor_view, "two_factor"),
    ("settings/passkeys/options/", account.passkey_options, "passkey_options"),
    ("settings/passkeys/", account.passkeys_view, "passkeys"),
    ("settings/senders/", senders.senders_view, "senders"),
    ("settings/identities/", identities.identities_view, "identities"),
    ("contacts/", contacts.contacts_view, "contacts"),
    ("contacts/import/", contacts.contacts_import, "contacts_import"),
    ("contacts/export.vcf", contacts.contacts_export, "contacts_export"),
    ("contacts/<int:contact_id>/delete/", contacts.contact_delete, "contact_delete"),
    ("contacts/<int:contact_id>/", contacts.contact_edit, "contact_edit"),
    ("settings/senders/add/", senders.sender_add, "sender_add"),
    ("settings/senders/<int:entry_id>/remove/", senders.sender_remove, "sender_remove"),
    ("settings/filters/", filters.filters_view, "filters"),
    ("settings/filters/add/", filters.rule_add, "rule_add"),
    ("settings/filters/<int:index>/delete/", filters.rule_delete, "rule_delete"),
    ("settings/filters/<int:index>/move/", filters.rule_move, "rule_move"),
    ("settings/filters/script/", filters.script_save, "script_save"),
    ("settings/filters/scripts/activate/", filters.script_activate, "script_activate"),
    ("settings/filters/scripts/delete/", filters.script_delete, "script_delete"),
    ("settings/vacation/", filters.vacation_view, "vacation"),
    ("settings/forwarding/", filters.forwarding_view, "forwarding"),
    ("api/status/", api.status, "api_status"),
    ("api/wait/", api.wait, "api_wait"),
    ("api/addresses/", api.addresses, "api_addresses"),
]

urlpatterns = [path(route, with_headers(view), name=name) for route, view, name in _routes]
