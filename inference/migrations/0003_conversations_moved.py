"""Conversation and Message now belong to the conversations app: forget them here, in state only.

Their tables stay (conversations/migrations/0001_initial.py took them over); this runs after
feedback 0002 so that nothing in the state still points at inference.Message.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0001_initial"),
        ("feedback", "0002_message_in_conversations"),
        ("inference", "0002_conversations"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Message"),
                migrations.DeleteModel(name="Conversation"),
            ],
            database_operations=[],
        ),
    ]
