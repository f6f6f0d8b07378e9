"""The domain: reminder policies as data, pure stage evaluation, message templates.

- policy / stages: the permit's stages and touch days (plus the working-day touch a holiday adds)
- deadlines / workdays: the last working day of each window, China's official calendar
- accumulation: accumulated holding years and the late-endorsement reset rules
- points_policy / points: points (积分) renewal risks as findings, and their touches
- messages / findings_text / texts / templates: the words; digest: the HR digest

This package imports nothing from `worker` or `notifiers`.
"""
