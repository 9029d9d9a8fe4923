from django.core.management.base import BaseCommand

from delivery import selectors


class Command(BaseCommand):
    help = "List the mail waiting in the outbound queue, as Postfix's mailq does."

    def handle(self, *args, **options):
        rows = selectors.pending_recipients(held=True)
        if not rows:
            self.stdout.write("Mail queue is empty")
            return
        message_id = None
        for row in rows:
            message = row.message
            if message.pk != message_id:
                if message_id is not None:
                    self.stdout.write("")
                message_id = message.pk
                arrived = message.created_at.strftime("%Y-%m-%d %H:%M:%S")
                sender = message.mail_from or "MAILER-DAEMON"
                # Postfix marks a message on hold with "!" after its queue id.
                held = any(r.status == "hold" for r in rows if r.message_id == message.pk)
                queue_id = message.queue_id + ("!" if held else "")
                self.stdout.write(f"{queue_id:<17} {message.size:>9} {arrived}  {sender}")
            next_at = row.next_attempt_at.strftime("%H:%M:%S") if row.next_attempt_at else "-"
            if row.last_reply:
                self.stdout.write(f"    ({row.last_reply})")
            self.stdout.write(
                f"    {row.address}  [{row.status}, {row.attempts} attempt(s), next {next_at}]"
            )
        messages = len({row.message_id for row in rows})
        self.stdout.write(f"-- {messages} message(s), {len(rows)} recipient(s) waiting")
