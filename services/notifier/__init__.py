"""The notifier: signals → alerts → the right clinician, once, on their channel; critical ones escalate."""
