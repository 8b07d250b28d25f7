"""The rules file, read once into typed values: the zone (zone), the checked YAML reading
with file:line:key errors (yaml_reader, schema, loader) and the typed action parameters
of cache and compression rules (parameters). The request path never reads YAML."""
