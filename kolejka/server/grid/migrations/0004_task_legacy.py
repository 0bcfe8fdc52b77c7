from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kolejka", "0003_schedules"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="legacy",
            field=models.BooleanField(default=False),
        ),
    ]
