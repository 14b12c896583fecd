"""Pure deployment logic: outcomes, decisions and plans. No boto3, docker or celery here."""
