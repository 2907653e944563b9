"""What AWS does around the functions, made locally from template.yaml: the template read (template.py), API
Gateway's proxy events (apigw.py), its limits (cloud_limits.py) and usage plans (usage_plan.py), and moto's
tables and secret (resources.py). Nothing here knows the runner or the emulator."""
