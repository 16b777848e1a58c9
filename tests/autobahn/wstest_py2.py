"""Start autobahntestsuite's wstest under Python 2.7 from a `pip install --target` folder.

Usage: python2.7 wstest_py2.py SITE_DIR [wstest arguments...]

`--target` installs skip .pth processing, so zope.interface only imports after
site.addsitedir(SITE_DIR) has read them.
"""
import site
import sys

site.addsitedir(sys.argv[1])
from autobahntestsuite import wstest  # noqa: E402

sys.argv = ["wstest"] + sys.argv[2:]
wstest.run()
