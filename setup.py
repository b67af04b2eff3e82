"""Install ddpm_lab from the metadata in settings.ini (nbdev 2 layout)."""
from configparser import ConfigParser
from pathlib import Path
import shutil
import setuptools
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

# Files a plain install needs, copied into the package as ddpm_lab/_data/ (a clone reads them in place).
SHIPPED = {'data': ['*.json', 'weights/*.pt', 'weights/*.pth', 'weights/*.json'], 'results': ['*.json'], 'nbs/images': ['*.png']}
INSTALLED_AS = {'data': '', 'results': 'results', 'nbs/images': 'images'}

class BuildWithData(build_py):
    "build_py that also copies the label files, shipped weights, results and figures into the package."
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return   # an editable install reads the clone's own folders
        for src, patterns in SHIPPED.items():
            for pattern in patterns:
                for f in sorted(Path(src).glob(pattern)):
                    dst = Path(self.build_lib) / cfg['lib_name'] / '_data' / INSTALLED_AS[src] / f.relative_to(src)
                    dst.parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, dst)

setuptools.setup(
    cmdclass={'build_py': BuildWithData},
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    author=cfg['author'], author_email=cfg['author_email'], license='Apache-2.0',
    url=cfg['git_url'], keywords=cfg['keywords'].split(), python_requires='>=' + cfg['min_python'],
    packages=setuptools.find_packages(include=['ddpm_lab', 'ddpm_lab.*']),
    install_requires=cfg['requirements'].split(),
    extras_require={'dev': cfg['dev_requirements'].split()},
    entry_points={'console_scripts': cfg['console_scripts'].split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    classifiers=['Development Status :: 3 - Alpha', 'Intended Audience :: Education', 'License :: OSI Approved :: Apache Software License',
                 'Natural Language :: English', 'Programming Language :: Python :: 3', 'Topic :: Scientific/Engineering :: Artificial Intelligence'],
    project_urls={'Source': cfg['git_url']},
    long_description=open('README.md', encoding='utf-8').read(), long_description_content_type='text/markdown',
    zip_safe=False)
