"""JupyterLab configuration for the browser tests (galata's test set-up, on a private port and folders).

Loaded with ``jupyter lab --config=<this file>`` by ``tests/ui/test_explorer_browser.py``, which passes the
port and folders in environment variables. galata's ``configure_jupyter_server`` disables the token, password
and XSRF checks and exposes ``window.galata`` / ``window.jupyterapp`` in the page; never use it for a real
server.
"""

import os

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # noqa: F821  (provided by the config loader)
configure_jupyter_server(c)

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ["DMLBOOK_UI_PORT"])
c.ServerApp.port_retries = 0
c.ServerApp.root_dir = os.environ["DMLBOOK_UI_ROOT"]
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True  # CI containers run as root
c.LabApp.user_settings_dir = os.environ["DMLBOOK_UI_SETTINGS"]
c.LabApp.workspaces_dir = os.environ["DMLBOOK_UI_WORKSPACES"]
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
