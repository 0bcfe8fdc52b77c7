from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('kolejka', '0009_workflows'),
    ]

    operations = [
        migrations.CreateModel(
            name='GridSecret',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ('key', models.CharField(max_length=200)),
            ],
        ),
    ]
