"""Release knowledge: what each OpenStack release installs, writes and runs.

`stackwright/release_table.py` is the table of releases and how each differs from the one before;
`modern/` holds the knowledge the deployable releases share; `grizzly/` the guide's own release
(render only). `registry.get_release(name)` builds a `Release`, importing a release's code only
when it is used.
"""
