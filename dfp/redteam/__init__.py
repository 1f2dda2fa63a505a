"""The red-team loop: make deepfakes with every creation method, enhance them with every setting, score
every variant with every detector, and report how detection holds up.

``config`` reads and checks a run's YAML file; ``inputs`` prepares the stills and clips it names;
``runner`` drives the work through the gateway (resumable, idempotent per item); ``report`` turns the
scores into metrics, figures and the Markdown/JSON report; ``hard_examples`` turns missed fakes into
detector training data.
"""
