"""The static files storage of production: WhiteNoise's compressed manifest storage, which also
rewrites the relative imports between ES modules to the hashed names.

The live page's entry, static/js/live-session.js, imports its modules from static/js/live/ with
relative specifiers ("./live/socket.js"). The manifest storage serves every hashed file as cached
for ever; without the rewriting, the hashed entry would still ask for the unhashed module names,
which are cached briefly and change under it at the next deploy: one page could run one deploy's
entry with another deploy's modules. With it, the entry's hash covers its modules' hashes.

Django only rewrites `import`/`export ... from "./x.js";` statements (semicolon included) and
needs the imports acyclic: a cycle keeps the hashes from settling and collectstatic fails.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class CompressedManifestModulesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
