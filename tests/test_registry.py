"""Lazy registries: discovery without import, closest-name errors, broken modules isolated."""
import sys
import textwrap

import pytest

from basicsr.utils.registry import Registry, RegistryError, check_kwargs


@pytest.fixture
def fake_pkg(tmp_path, monkeypatch):
    pkg = tmp_path / 'fakepkg_reg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'good_arch.py').write_text(textwrap.dedent('''
        from fakepkg_reg.reg import REG
        @REG.register()
        class GoodNet:
            def __init__(self, width=8, depth=2):
                self.width, self.depth = width, depth
        @REG.register(name='AliasNet')
        def make_alias(width=4):
            return GoodNet(width)
    '''))
    (pkg / 'broken_arch.py').write_text(textwrap.dedent('''
        import not_a_real_module_xyz
        from fakepkg_reg.reg import REG
        @REG.register()
        class BrokenNet:
            pass
    '''))
    (pkg / 'reg.py').write_text(textwrap.dedent('''
        from basicsr.utils.registry import Registry
        REG = Registry('arch', 'fakepkg_reg', '_arch', 'REG')
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [m for m in sys.modules if m.startswith('fakepkg_reg')]:
        del sys.modules[name]


def test_names_are_found_without_importing_modules(fake_pkg):
    from fakepkg_reg.reg import REG
    assert {'GoodNet', 'AliasNet', 'BrokenNet'} <= set(REG.keys())
    assert 'fakepkg_reg.good_arch' not in sys.modules
    assert REG.build({'type': 'GoodNet', 'width': 3}).width == 3
    assert 'fakepkg_reg.good_arch' in sys.modules
    assert REG.build({'type': 'AliasNet'}).width == 4


def test_broken_module_fails_only_when_requested_with_chained_cause(fake_pkg):
    from fakepkg_reg.reg import REG
    assert REG.get('GoodNet') is not None
    with pytest.raises(RegistryError) as info:
        REG.get('BrokenNet')
    assert 'broken_arch' in str(info.value) and 'not_a_real_module_xyz' in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_unknown_type_lists_closest_names(fake_pkg):
    from fakepkg_reg.reg import REG
    with pytest.raises(RegistryError, match="closest: GoodNet"):
        REG.get('GoodNt')


def test_unknown_kwarg_lists_accepted_and_suggests():
    class Net:
        def __init__(self, width=1, depth=2):
            pass
    with pytest.raises(TypeError, match=r"'widht' \(did you mean 'width'\?\).*accepted: width, depth"):
        check_kwargs(Net, {'widht': 3}, 'arch Net')


def test_duplicate_registration_is_an_error():
    reg = Registry('thing')
    reg.register(int, name='X')
    with pytest.raises(RegistryError, match='already registered'):
        reg.register(float, name='X')


def test_importing_basicsr_is_cheap():
    import subprocess
    code = ('import sys, basicsr, basicsr.archs, basicsr.losses, basicsr.data, basicsr.metrics;'
            'heavy=[m for m in sys.modules if m.endswith("_arch") or m.startswith("basicsr.losses.")];'
            'print(len(heavy)); assert not heavy, heavy')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_build_network_for_a_real_type_and_list_networks():
    from basicsr.archs import build_network, list_networks
    assert 'NAFNet' in list_networks()
    net = build_network({'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1,
                         'dec_blk_nums': [1]})
    assert sum(p.numel() for p in net.parameters()) > 0


def test_module_that_does_not_parse_is_named_with_its_error(fake_pkg, tmp_path):
    """A type defined in a module with a syntax error is not 'just unregistered': the error names the module."""
    (tmp_path / 'fakepkg_reg' / 'typo_arch.py').write_text('class TypoNet(:\n    pass\n')
    from fakepkg_reg.reg import REG
    with pytest.raises(RegistryError) as info:
        REG.get('TypoNet')
    assert 'fakepkg_reg.typo_arch' in str(info.value) and 'SyntaxError' in str(info.value)
