from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kolejka", "0002_node_health_and_retry_spacing"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="legacy",
            field=models.BooleanField(default=False),
        ),
    ]
