"""Cancer registry data (COSD tumour registrations): built in the registry issue."""
