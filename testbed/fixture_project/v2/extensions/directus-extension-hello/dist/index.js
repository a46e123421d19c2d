export default {
	id: 'hello',
	handler: (router) => {
		router.get('/', (_req, res) => res.json({ message: 'hello from v2', release: 'v2' }));
	},
};
