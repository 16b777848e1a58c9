"""The YAML inventory: hosts, groups, variables and secret references, validated once.

`load` reads and resolves a file (native or Ansible format) into frozen specs;
`nodes` turns one YAML node into a value or an error naming file, line and key;
`patterns` selects hosts with Ansible's pattern syntax.
"""
