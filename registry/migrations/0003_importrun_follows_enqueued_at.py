"""Upload queue: a treatments run follows its tumours run, and when a run was last enqueued (the
sweep re-enqueues runs whose message was lost)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_surnames_public_ids_imported_patients"),
    ]

    operations = [
        migrations.AddField(
            model_name="importrun",
            name="enqueued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="importrun",
            name="follows",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="followers",
                to="registry.importrun",
            ),
        ),
    ]
