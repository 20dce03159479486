"""The orders table (written by `manage.py makemigrations`, laid out for the linter)."""

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(
            name="Order",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("customer", models.CharField(max_length=100)),
                ("total_cents", models.PositiveIntegerField()),
                ("status", models.CharField(default="new", max_length=20)),
                ("confirmed_by_job", models.CharField(blank=True, max_length=200)),
            ],
        ),
    ]
