"""What can be searched: ops, genotypes, cells, networks, search spaces and the classic zoo.

This layer imports only torch (and the standard library).
"""
