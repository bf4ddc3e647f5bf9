"""Gateway: HTTP and FHIR R4 intake onto ``rapport.session-completed.v1``; scores back as FHIR."""
