"""Front ends: each desired-file format read the way its own toolstack reads it, into libxl JSON.

``xl`` reads an xl.cfg(5) the way ``xl create`` (Xen 4.17) does, straight into
``libxl_domain_config`` JSON; domain XML goes through ``libxl.domain.formats.domxml`` and
``libxl.frontends.libvirt`` (libvirt's libxl driver's choices). Both meet at the libxl JSON that diff, plan
and apply use. The grammars inside values (disk, vif and rate, PCI, cpu lists, cpuid) live in
``libxl.domain.formats`` and are shared with the converters.
"""
