"""Conversation and Message move here from inference, keeping their tables, indexes and rows.

The tables were created by inference 0002 and stay as they are: this migration only tells
Django's migration state that the models now belong to this app (`db_table` keeps the old
names). Their content types move with them, so permissions granted on them and admin history
stay attached. Then feedback 0002 points its foreign key here and inference 0003 forgets the
models, both in state only.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MODELS = ("conversation", "message")


def move_content_types(apps, schema_editor, source="inference", target="conversations"):
    # Renaming the rows keeps their ids, which auth permissions and admin log entries refer to.
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MODELS:
        if not ContentType.objects.using(db).filter(app_label=target, model=model).exists():
            ContentType.objects.using(db).filter(app_label=source, model=model).update(app_label=target)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source="conversations", target="inference")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("inference", "0002_conversations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Conversation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        ("title", models.CharField(blank=True, max_length=200)),
                        ("created", models.DateTimeField(auto_now_add=True)),
                        ("updated", models.DateTimeField(auto_now=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="conversations",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "inference_conversation",
                        "ordering": ["-updated", "-id"],
                        "indexes": [
                            models.Index(fields=["user", "-updated"], name="inference_c_user_id_78f08c_idx")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="Message",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        (
                            "role",
                            models.CharField(
                                choices=[("system", "System"), ("user", "User"), ("assistant", "Assistant")],
                                max_length=16,
                            ),
                        ),
                        ("content", models.TextField(blank=True)),
                        ("provider", models.CharField(blank=True, max_length=32)),
                        ("model", models.CharField(blank=True, max_length=500)),
                        ("prompt_tokens", models.PositiveIntegerField(blank=True, null=True)),
                        ("completion_tokens", models.PositiveIntegerField(blank=True, null=True)),
                        ("finish_reason", models.CharField(blank=True, max_length=16)),
                        ("completion_id", models.CharField(blank=True, max_length=64)),
                        ("created", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "conversation",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="messages",
                                to="conversations.conversation",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "inference_message",
                        "ordering": ["id"],
                        "indexes": [
                            models.Index(fields=["conversation", "id"], name="inference_m_convers_5309bf_idx")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back, elidable=True),
    ]
