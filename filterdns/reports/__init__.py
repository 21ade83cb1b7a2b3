"""Reports for families: the weekly class safety report (``weekly``), the periods of the
school day it counts blocked attempts in (``periods``), and the words it uses
(``guidance``)."""
