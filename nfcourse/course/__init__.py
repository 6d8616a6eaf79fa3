"""The course machinery: exercise checks, the exercise generator, the command line, doctor.

Nothing outside this package (and the lesson notebooks) imports it
(docs/architecture.md).
"""
