"""FHIR R4 mapping: ``QuestionnaireResponse`` in → ``SessionCompleted``; ``SurveyScored`` → ``Observation``.

Pure code over the ``fhir.resources.R4B`` models (R4-compatible; the package's default models are
R5). No I/O: the gateway passes the clinic, the clock and the stored facts in. The mapping rules are
documented in ``docs/gateway.md``; the code systems and URLs are in :mod:`shared.fhir.codes`.
"""
