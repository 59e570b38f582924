"""The behaviour suites of :mod:`memory_resources.testing`, one module per role.

Each module is collected by the kit's plugin under the ``conftest.py`` that provides the
role's ``memory_<role>`` fixture; the fixture each test takes (``context_store``, ...) is
defined in :mod:`.roles` and hands over the project's fixture.
"""
