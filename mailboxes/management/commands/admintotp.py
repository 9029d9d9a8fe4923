import segno
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from mailboxes import services, totp


class Command(BaseCommand):
    help = (
        "Two-factor sign-in for a Django admin user: enrol (prints the key, the otpauth URI"
        " and a QR code for an authenticator app; the admin sign-in then asks for its code),"
        " or --remove."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--remove", action="store_true", help="turn it off for this user")
        parser.add_argument("--no-qr", action="store_true", help="do not draw the QR code")

    def handle(self, *args, **options):
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError(f"no user {options['username']}")
        if options["remove"]:
            removed = services.admin_totp_remove(user=user)
            self.stdout.write("removed" if removed else "was not enrolled")
            return
        secret = services.admin_totp_enrol(user=user)
        uri = totp.provisioning_uri(secret, account=user.get_username(), issuer="Mailhost admin")
        self.stdout.write(f"key: {secret}\nuri: {uri}")
        if not options["no_qr"]:
            segno.make(uri, error="m").terminal(out=self.stdout, compact=True)
