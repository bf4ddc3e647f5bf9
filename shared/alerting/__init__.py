"""The alert policy (pure): from signals to alerts, and how each alert reaches a human.

``policy`` decides per client (dedup, throttle, inhibition, routing, escalation, retries),
``digest`` per clinician, ``retry`` what is retried and when, ``messages`` what each channel says
(email and chat carry no client data) and the Standard Webhooks signature. The notifier service
runs these functions; tests run them without Kafka.
"""
